"""Shipped separation models: ``<name>.pt`` files listed in ``manifest.json`` with sha256.

Install one with :func:`separation.hub.install_pretrained` (copies the file and updates the
manifest); ``wb separate --model <name>`` verifies the checksum before loading.
"""
