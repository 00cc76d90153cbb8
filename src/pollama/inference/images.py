"""Images of a request, checked and made readable by the runner before any runner sees them.

Requests carry images as standard base64 of the file's bytes (API-11: Go's `[]byte` JSON, no
`data:` prefix). Each is decoded, its format sniffed from its magic bytes, and the picture
decoded once with Pillow, so a corrupt or truncated file, a format that is not an image, or a
decompression bomb is the user's 400 naming which image, never a runner failure. PNG and JPEG
go to the runner as sent (mtmd decodes them with stb_image); WebP and GIF (its first frame),
which Ollama converts too, and JPEGs in CMYK, are re-encoded as PNG.
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from collections.abc import Sequence

from pollama.errors import InvalidImage

MAX_IMAGE_BYTES = 100 * 1024 * 1024  # the CLI's limit on a file (RUN-10), here for any image
MAX_IMAGE_PIXELS = 64 * 1024 * 1024  # 8192×8192; more is refused before it is decoded
PASS_THROUGH = ("PNG", "JPEG")  # what mtmd's stb_image reads as sent
PASS_MODES = ("1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I;16B", "I", "PA")


def sniff(data: bytes) -> str | None:
    """The image format named by the first bytes (Pillow's names), None when not an image."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    return None


def _what(data: bytes) -> str:
    """For an error: what the bytes look like instead of a supported image."""
    if (data[:4] == b"RIFF" and data[8:12] == b"WAVE") or data[:3] == b"ID3":
        return "audio, which pollama does not take yet"
    if data[:2] == b"BM":
        return "a BMP image"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "a TIFF image"
    if data[4:12] in (b"ftypheic", b"ftypheix", b"ftypavif", b"ftypmif1"):
        return "a HEIF/AVIF image"
    try:
        head = data[:512].decode("utf-8")
    except UnicodeDecodeError:
        head = ""
    if head and all(c.isprintable() or c.isspace() for c in head):
        return "text, not an image"
    return "not a known image format"


def decode_base64(text: str) -> bytes:
    """Standard base64 (padding required, no data: URL prefix), as Go decodes `[]byte`."""
    if text.startswith("data:"):
        raise ValueError("not standard base64: send the file's bytes base64-encoded, without "
                         "a data: URL prefix")
    if len(text) > (MAX_IMAGE_BYTES + 2) // 3 * 4 + 4:
        raise ValueError(f"larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MB")
    # Go's decoder skips \r and \n; everything else must be the standard alphabet, padded.
    clean = text.replace("\r", "").replace("\n", "")
    if len(clean) % 4:
        raise ValueError("not standard base64 (its length is not a multiple of 4)")
    try:
        return base64.b64decode(clean, validate=True)
    except (binascii.Error, ValueError) as err:
        raise ValueError(f"not standard base64 ({err})") from None


def normalize(data: bytes) -> bytes:
    """The bytes of an image the runner can read: checked, and re-encoded as PNG if need be.

    Raises ValueError saying what is wrong with it.
    """
    from PIL import Image, UnidentifiedImageError

    if len(data) > MAX_IMAGE_BYTES:
        raise ValueError(f"larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MB")
    if not data:
        raise ValueError("empty")
    fmt = sniff(data)
    if fmt is None:
        raise ValueError(f"unsupported format: {_what(data)} (PNG, JPEG, WebP and GIF are "
                         "supported)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[fmt])
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise ValueError(f"too large: {width}x{height} pixels (at most "
                                 f"{MAX_IMAGE_PIXELS} pixels)")
            if width == 0 or height == 0:
                raise ValueError(f"{width}x{height} pixels")
            image.seek(0)  # an animation's first frame
            image.load()
    except ValueError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ValueError(f"too large (at most {MAX_IMAGE_PIXELS} pixels): {err}") from None
    except UnidentifiedImageError:
        raise ValueError(f"corrupt {fmt} data (Pillow cannot read it)") from None
    except (OSError, SyntaxError, EOFError) as err:
        raise ValueError(f"corrupt {fmt} data ({err})") from None
    if fmt in PASS_THROUGH and image.mode in PASS_MODES:
        return data
    rgb = image.convert("RGBA" if _has_alpha(image) else "RGB")
    out = io.BytesIO()
    rgb.save(out, format="PNG")
    return out.getvalue()


def _has_alpha(image: object) -> bool:
    mode = getattr(image, "mode", "")
    info = getattr(image, "info", {})
    return mode in ("RGBA", "LA", "PA") or "transparency" in info


def prepare(images: Sequence[str], label: str) -> list[str]:
    """Each base64 image checked and normalised, as base64 again; `label` names where they
    are for the error (`image 2 of message 3`, `image 1`): `{n}` is the 1-based image number.
    """
    out = []
    for n, text in enumerate(images, 1):
        where = label.format(n=n)
        try:
            out.append(base64.b64encode(normalize(decode_base64(text))).decode())
        except ValueError as err:
            raise InvalidImage(f"{where} could not be decoded: {err}") from None
    return out
