"""One-off tuning experiments whose results are written into the code (each module's docstring
says which value it chose and how to run it again)."""
