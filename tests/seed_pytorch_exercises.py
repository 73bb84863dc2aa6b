# The PyTorch answer's exercise code (exercises 2 and 3): its three notebook cells as published,
# with one change: the two import lines that appended a folder to sys.path and imported a local
# `d2l` module became `from d2l_utils import torch as d2l`. tests/test_seed_pytorch_code.py runs
# the cells one by one in an IPython shell, as a notebook would.
# %%
import sys
import torch.nn as nn
import torch
import warnings
from d2l_utils import torch as d2l
warnings.filterwarnings("ignore")

class ReusedMLP(d2l.Classifier):
     def __init__(self, num_outputs, num_hiddens, lr, reused_layer):
        super().__init__()
        self.save_hyperparameters()
        layers = [reused_layer,nn.ReLU()]
        for num in num_hiddens:
            layers.append(nn.LazyLinear(num))
            layers.append(nn.ReLU())
        layers.append(nn.LazyLinear(num_outputs))
        self.net = nn.Sequential(*layers)
        
hparams = {'num_hiddens':[256,128,64,32],'num_outputs':10,'lr':0.1}
model = d2l.MulMLP(**hparams)
X = torch.randn(size=(2, 20))
Y = model(X)
torch.save(model.state_dict(), 'mlp.params')
clone = d2l.MulMLP(**hparams)
clone.load_state_dict(torch.load('mlp.params'))
reused_layer = clone.net[:2]
hparams = {'num_hiddens':[8,4],'num_outputs':3,'lr':0.1,'reused_layer':reused_layer}
new_model = ReusedMLP(**hparams)
new_model.net
# %%
hparams = {'num_hiddens':[256,128,64,32],'num_outputs':10,'lr':0.1}
model = d2l.MulMLP(**hparams)
# Save the model architecture to a script or JSON
torch.save(model, 'model_architecture.pth')

# Save the model parameters to a separate file
torch.save(model.state_dict(), 'model_parameters.pth')
# %%
loaded_architecture = torch.load('model_architecture.pth')
loaded_architecture.net
