"""shoplm: language models inside a retail app."""

import os

__version__ = "0.1.0"

# transformers (5.x, with its `kernels` dependency) swaps layers of every model it loads for
# kernels downloaded from the Hugging Face Hub when the model sits on a GPU. Offline that load
# fails mid-run, and online it runs code fetched at load time. shoplm keeps PyTorch's own layers
# unless USE_HUB_KERNELS is set.
os.environ.setdefault("USE_HUB_KERNELS", "NO")
