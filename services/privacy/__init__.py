"""Export and erasure of a tenant's or a rep's data across the four services (issue 16, item 7)."""
