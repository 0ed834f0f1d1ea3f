"""Small pure functions with a paper-level name: returns, advantages, normalisation."""
