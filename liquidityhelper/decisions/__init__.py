"""Pure rules, one module per section: snapshot, settings, peers in; actions out."""
