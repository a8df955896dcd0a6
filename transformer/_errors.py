"""The one exception type the transform library raises for bad input.

    TransformError             code                status  when
     ├── UnsupportedImage      unsupported_format  400     not an image, truncated, undecodable
     ├── ImageTooLarge         image_too_large     400     declared pixels over the limit (bomb)
     └── TransformTimeout      transform_timeout   503     took longer than the time limit

Callers catch ``TransformError`` and map ``.code``/``.status`` to the reference's error shape;
they never see a libvips or Pillow exception.
"""

from __future__ import annotations


class TransformError(Exception):
    code = "unsupported_format"
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnsupportedImage(TransformError):
    code = "unsupported_format"
    status = 400


class ImageTooLarge(TransformError):
    code = "image_too_large"
    status = 400


class TransformTimeout(TransformError):
    code = "transform_timeout"
    status = 503
