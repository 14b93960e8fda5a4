"""The black-box `outputs` signal's parts: a model behind an endpoint, compared by what it outputs."""
