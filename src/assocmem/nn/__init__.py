"""Deep-learning layers built on the modern Hopfield (Model B) update (REFERENCE.md section 2)."""
