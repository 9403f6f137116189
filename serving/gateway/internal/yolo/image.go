// Package yolo holds the model-side pure functions of the server: image decoding, letterbox and centre-crop
// pre-processing, and the post-processing (NMS, masks, polygons, top-k) that turns raw outputs into answers.
// Each function mirrors engines/processing.py so both servers give the same answers for the same image.
package yolo

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // registers the decoders image.Decode uses
	_ "image/png"

	_ "golang.org/x/image/webp"
)

// MaxPixels bounds width*height before decoding, so a small file that claims a huge canvas is refused early.
const MaxPixels = 50_000_000

// ErrBadImage wraps every decoding failure: the HTTP layer answers 400 bad_image for it.
var ErrBadImage = errors.New("bad image")

// RGB is an 8-bit, 3-channel image, rows of R,G,B bytes (HWC), as numpy arrays are on the Python side.
type RGB struct {
	Width, Height int
	Pix           []uint8
}

// Decode reads a JPEG, PNG or WEBP image into RGB. Alpha is dropped, not blended, as PIL's convert("RGB") does.
func Decode(data []byte) (*RGB, string, error) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, "", fmt.Errorf("%w: not a JPEG, PNG or WEBP image (%v)", ErrBadImage, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, "", fmt.Errorf("%w: %s image has no pixels (%dx%d)", ErrBadImage, format, cfg.Width, cfg.Height)
	}
	if int64(cfg.Width)*int64(cfg.Height) > MaxPixels {
		return nil, "", fmt.Errorf("%w: %dx%d is over the %d-pixel limit", ErrBadImage, cfg.Width, cfg.Height, MaxPixels)
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, "", fmt.Errorf("%w: the %s data is damaged (%v)", ErrBadImage, format, err)
	}
	return ToRGB(img), format, nil
}

// ToRGB converts any decoded image to RGB, with fast paths for what the decoders return.
func ToRGB(img image.Image) *RGB {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	out := &RGB{Width: w, Height: h, Pix: make([]uint8, w*h*3)}
	switch src := img.(type) {
	case *image.NRGBA:
		for y := 0; y < h; y++ {
			row := src.Pix[(y)*src.Stride:]
			dst := out.Pix[y*w*3:]
			for x := 0; x < w; x++ {
				dst[3*x], dst[3*x+1], dst[3*x+2] = row[4*x], row[4*x+1], row[4*x+2]
			}
		}
	case *image.YCbCr: // JPEG
		for y := 0; y < h; y++ {
			dst := out.Pix[y*w*3:]
			for x := 0; x < w; x++ {
				yi, ci := src.YOffset(b.Min.X+x, b.Min.Y+y), src.COffset(b.Min.X+x, b.Min.Y+y)
				dst[3*x], dst[3*x+1], dst[3*x+2] = color.YCbCrToRGB(src.Y[yi], src.Cb[ci], src.Cr[ci])
			}
		}
	case *image.RGBA:
		for y := 0; y < h; y++ {
			row := src.Pix[y*src.Stride:]
			dst := out.Pix[y*w*3:]
			for x := 0; x < w; x++ {
				dst[3*x], dst[3*x+1], dst[3*x+2] = row[4*x], row[4*x+1], row[4*x+2]
			}
		}
	case *image.Gray:
		for y := 0; y < h; y++ {
			row := src.Pix[y*src.Stride:]
			dst := out.Pix[y*w*3:]
			for x := 0; x < w; x++ {
				v := row[x]
				dst[3*x], dst[3*x+1], dst[3*x+2] = v, v, v
			}
		}
	default:
		i := 0
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				c := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
				out.Pix[i], out.Pix[i+1], out.Pix[i+2] = c.R, c.G, c.B
				i += 3
			}
		}
	}
	return out
}
