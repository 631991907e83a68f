"""`relay sync`: new and changed watchlist records imported into XDR as grouped incidents."""
