"""The datasets: static facts (:mod:`~train.datasets.info`), the data on disk
(:mod:`~train.datasets.source`), and preparing it without TensorFlow: CIFAR from
the official archives (:mod:`~train.datasets.cifar_archive`, written as TFDS
writes it by :mod:`~train.datasets.cifar_writer`) and the Tiny-ImageNet builder
(:mod:`~train.datasets.tiny_imagenet`), which TFDS lacks; importing that module
registers ``tiny_imagenet`` with TFDS.

This package does not import the modules itself, so that
``python -m train.datasets.tiny_imagenet`` does not register a builder twice.
"""
