"""dynajax: physics for deep learning and deep learning for physics, in JAX."""

from importlib.metadata import PackageNotFoundError, version

from dynajax.compilation_cache import enable_compilation_cache
from dynajax.cpu_dispatch import use_sync_dispatch_on_one_core
from dynajax.solve import integrate

try:
    __version__ = version("dynajax")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+local"

__all__ = ["enable_compilation_cache", "integrate", "use_sync_dispatch_on_one_core", "__version__"]
