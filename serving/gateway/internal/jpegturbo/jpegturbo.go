// Package jpegturbo decodes JPEG through libjpeg-turbo's TurboJPEG API, linked statically (the server's binary
// carries it; no image needs the library installed), with DCT-domain scaling: a frame can be decoded at 1/2, 1/4
// or 1/8 of its size directly, never whole and then shrunk (package yolo decides when).
//
// At full size its pixels are the ones OpenCV's and Pillow's libjpeg-turbo give (accurate integer IDCT, fancy
// chroma upsampling), which is what Ultralytics feeds its models.
package jpegturbo

/*
#cgo LDFLAGS: -l:libturbojpeg.a -lm
#include <stdlib.h>
#include <turbojpeg.h>
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"
)

// ErrDecode wraps every failure: damaged or truncated data (a warning is a failure too: the image would be partly
// grey), or a JPEG whose colour space has no RGB conversion here (CMYK).
var ErrDecode = errors.New("libjpeg-turbo could not decode the JPEG")

// Header is what a JPEG says of itself before any pixel is decoded.
type Header struct {
	Width, Height int
	CMYK          bool // CMYK and YCCK JPEGs: TurboJPEG gives no RGB for them
}

// Scale is a reduction libjpeg-turbo decodes at directly, in the DCT (Num/Denom of each side): 1/1, 1/2, 1/4 or
// 1/8 are the ones OpenCV (IMREAD_REDUCED_*) and Pillow (draft) decode at too, to the same pixels.
type Scale struct{ Num, Denom int }

// Of is a side of dim pixels at this scale (TJSCALED: rounded up).
func (s Scale) Of(dim int) int { return (dim*s.Num + s.Denom - 1) / s.Denom }

func lastError(h C.tjhandle) error {
	return fmt.Errorf("%w: %s", ErrDecode, C.GoString(C.tjGetErrorStr2(h)))
}

func header(h C.tjhandle, data []byte) (Header, error) {
	var w, hh, subsamp, colorspace C.int
	if C.tjDecompressHeader3(h, (*C.uchar)(unsafe.Pointer(&data[0])), C.ulong(len(data)), &w, &hh, &subsamp,
		&colorspace) != 0 {
		return Header{}, lastError(h)
	}
	if w <= 0 || hh <= 0 {
		return Header{}, fmt.Errorf("%w: the header gives no size (%dx%d)", ErrDecode, int(w), int(hh))
	}
	return Header{Width: int(w), Height: int(hh), CMYK: colorspace == C.TJCS_CMYK || colorspace == C.TJCS_YCCK},
		nil
}

func handle(data []byte) (C.tjhandle, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: no data", ErrDecode)
	}
	h := C.tjInitDecompress()
	if h == nil {
		return nil, fmt.Errorf("%w: %s", ErrDecode, C.GoString(C.tjGetErrorStr2(nil)))
	}
	return h, nil
}

// ReadHeader reads the image's size and colour space.
func ReadHeader(data []byte) (Header, error) {
	h, err := handle(data)
	if err != nil {
		return Header{}, err
	}
	defer C.tjDestroy(h)
	return header(h, data)
}

// Decode decodes data to RGB (rows of R,G,B bytes) at the given scale, into dst when it is large enough (a new
// slice otherwise); it returns the pixels and their width and height.
func Decode(data []byte, scale Scale, dst []byte) ([]byte, int, int, error) {
	h, err := handle(data)
	if err != nil {
		return nil, 0, 0, err
	}
	defer C.tjDestroy(h)
	hdr, err := header(h, data)
	if err != nil {
		return nil, 0, 0, err
	}
	if hdr.CMYK {
		return nil, 0, 0, fmt.Errorf("%w: a CMYK JPEG", ErrDecode)
	}
	w, hh := scale.Of(hdr.Width), scale.Of(hdr.Height)
	if cap(dst) < w*hh*3 {
		dst = make([]byte, w*hh*3)
	}
	dst = dst[:w*hh*3]
	// flags: none of the fast paths, so the accurate integer IDCT and fancy upsampling, libjpeg's defaults, as
	// OpenCV and Pillow decode; TJFLAG_STOPONWARNING: truncated or corrupt data is refused, not decoded in part
	if C.tjDecompress2(h, (*C.uchar)(unsafe.Pointer(&data[0])), C.ulong(len(data)),
		(*C.uchar)(unsafe.Pointer(&dst[0])), C.int(w), 0, C.int(hh), C.TJPF_RGB, C.TJFLAG_STOPONWARNING) != 0 {
		return nil, 0, 0, lastError(h)
	}
	return dst, w, hh, nil
}
