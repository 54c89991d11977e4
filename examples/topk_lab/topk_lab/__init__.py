"""topk_lab: top-k classification of MNIST digits learned through a differentiable sorting network.

An example of a user's own differentiable-algorithm problem on the Newton-losses platform, in a package of its
own: a loss (``topk_lab.loss``) and a task (``topk_lab.task``), found by a study through their import paths or
through the entry points that ``pyproject.toml`` declares.
"""
