"""TFDS dataset builders that TFDS itself lacks.

Importing a builder's module registers it with TFDS (``tfds.builder``,
``tfds.data_source``):

* ``train.datasets.tiny_imagenet``: ``tiny_imagenet`` (``TinyImagenet``).

This package does not import the modules itself, so that
``python -m train.datasets.tiny_imagenet`` does not register a builder twice.
"""
