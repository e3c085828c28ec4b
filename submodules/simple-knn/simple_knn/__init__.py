"""Exact 3-nearest-neighbour distances on the GPU: ``simple_knn._C.distCUDA2(points [N,3]) -> [N]``.

The compiled module ``_C`` exists once the package is pip-installed; ``utils.cuda_ext.load_knn``
builds the same sources just in time otherwise.
"""
