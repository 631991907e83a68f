"""`relay sync`: new and changed watchlist records pushed into XDR as grouped incidents."""
