"""``jaxmlp-bench``: command-line studies (cutoff, layers, locality, speed, train)."""
