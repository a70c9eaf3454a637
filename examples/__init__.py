"""Reference code for teams that build on Attain's topics: copy it, adapt it; the services never import it."""
