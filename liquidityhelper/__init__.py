"""liquidityhelper: keeps Bitcart stores payable over Lightning."""

__version__ = "0.1.0"
