"""Instructor tools: grade a folder of submissions in parallel and in a sandbox; build handouts.

    python -m grading grade SUBMISSIONS [--jobs K] [--timeout S]
    python -m grading handout [--out DIR]

Built on nbgrader (course settings in nbgrader_config.py and grading.course).
"""
