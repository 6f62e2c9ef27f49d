"""Image operations on tensors, shared by the models, the data pipelines and the tasks:
MATLAB-exact bicubic resizing (:mod:`~densekit.ops.imresize`) and MATLAB-compatible colour
conversions (:mod:`~densekit.ops.color`)."""
