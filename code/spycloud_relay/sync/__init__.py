"""`relay sync`: new and changed watchlist exposures imported into XDR as incidents (issue 23)."""
