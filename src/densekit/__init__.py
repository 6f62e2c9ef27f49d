"""densekit: dense image prediction (HDCN super-resolution, SS-GAN segmentation) on one engine."""

__version__ = "0.1.0"
