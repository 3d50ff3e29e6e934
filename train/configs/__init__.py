"""Training configs (``ml_collections`` files for ``--config=train/configs/<name>.py``).

* ``default.py``: the paper's recipe (METHOD Sec. 7), conv model on CIFAR-10; the
  base every other config starts from.
* ``paper.py``: one config per result the paper reports, chosen by name
  (``--config=train/configs/paper.py:table1-cifar10-conv``; see its docstring).
* ``quick.py``: a reduced model and schedule that learns CIFAR-10 on a 2-core CPU
  in about a quarter of an hour.
"""
