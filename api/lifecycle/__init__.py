"""What happens to media after upload: deletion, and the sweepers that run in the background."""
