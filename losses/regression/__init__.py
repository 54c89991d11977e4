"""Regression losses: the mean squared error of the paper's appendix-G network (``mse.py``)."""
