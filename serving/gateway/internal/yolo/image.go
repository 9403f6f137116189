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
	case *image.YCbCr: // JPEG: chroma subsampling and the colour transform inlined (a third of decode time)
		sx := chromaShiftX(src.SubsampleRatio)
		for y := 0; y < h; y++ {
			yrow := src.Y[src.YOffset(b.Min.X, b.Min.Y+y):]
			cbase := src.COffset(b.Min.X, b.Min.Y+y)
			cb, cr := src.Cb[cbase:], src.Cr[cbase:]
			dst := out.Pix[y*w*3 : (y+1)*w*3]
			for x := 0; x < w; x++ {
				ci := (b.Min.X+x)>>sx - b.Min.X>>sx
				dst[3*x], dst[3*x+1], dst[3*x+2] = ycbcrToRGB(yrow[x], cb[ci], cr[ci])
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

// chromaShiftX is how many bits x shifts to index the chroma planes (COffset handles rows).
func chromaShiftX(r image.YCbCrSubsampleRatio) int {
	switch r {
	case image.YCbCrSubsampleRatio422, image.YCbCrSubsampleRatio420:
		return 1
	case image.YCbCrSubsampleRatio411, image.YCbCrSubsampleRatio410:
		return 2
	default:
		return 0
	}
}

// ycbcrToRGB is color.YCbCrToRGB, small enough to be inlined in the pixel loop.
func ycbcrToRGB(y, cb, cr uint8) (uint8, uint8, uint8) {
	yy := int32(y) * 0x10101
	cb1, cr1 := int32(cb)-128, int32(cr)-128
	r := yy + 91881*cr1
	g := yy - 22554*cb1 - 46802*cr1
	b := yy + 116130*cb1
	return clip16(r), clip16(g), clip16(b)
}

func clip16(v int32) uint8 {
	if uint32(v)&0xff000000 == 0 {
		return uint8(v >> 16)
	}
	return uint8(^(v >> 31))
}
