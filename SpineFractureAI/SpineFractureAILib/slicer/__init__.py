"""The Slicer-facing rooms: panel, parameters, table model, scene writers, logic, sample data,
dependencies and the worker-process client. The compute modules never import this folder."""
