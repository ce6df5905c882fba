"""`make bench`: the product's live path measured side by side with stock flask-sse."""
