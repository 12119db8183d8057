"""Project code the notebooks import (cookiecutter's `src` package)."""
