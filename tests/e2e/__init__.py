"""End-to-end tests: the real daemon against a real Bitcart and real Lightning peers (realstack)."""
