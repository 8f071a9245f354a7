"""Dense warp of the source face, mouth fill, and paste-back into the full portrait."""

from talkanim.render.crop import CropBox, crop_image, face_crop_box
from talkanim.render.preview import make_preview
from talkanim.render.renderer import FaceRenderer

__all__ = ["CropBox", "FaceRenderer", "crop_image", "face_crop_box", "make_preview"]
