"""The spine prior: the spinal canal and the chain of bodies in front of it; levels and their anchors."""
