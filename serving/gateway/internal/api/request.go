package api

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/yoloforge/yoloforge/serving/gateway/internal/yolo"
)

// ImageTypes are the Content-Types decoded as a raw image body.
var ImageTypes = []string{"image/jpeg", "image/png", "image/webp"}

// Error is an answer that is not 200: status, contract code and a message saying what to change.
type Error struct {
	Status     int
	Code       string
	Message    string
	RetryAfter int
	Allow      string // the methods a 405's route takes (RFC 9110 requires the header)
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

func badParameter(format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "bad_parameter", Message: fmt.Sprintf(format, args...)}
}

// ParseOptions reads conf, iou, max_det and top_k with the contract's ranges and defaults.
func ParseOptions(q url.Values) (yolo.Options, *Error) {
	o := yolo.DefaultOptions()
	number := func(name string, dst *float64) *Error {
		v := q.Get(name)
		if v == "" {
			return nil
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f != f || f < 0 || f > 1 {
			return badParameter("%s=%q: want a number from 0 to 1", name, v)
		}
		*dst = f
		return nil
	}
	integer := func(name string, lo, hi int, dst *int) *Error {
		v := q.Get(name)
		if v == "" {
			return nil
		}
		i, err := strconv.Atoi(v)
		if err != nil || i < lo || i > hi {
			return badParameter("%s=%q: want a whole number from %d to %d", name, v, lo, hi)
		}
		*dst = i
		return nil
	}
	for _, err := range []*Error{number("conf", &o.Conf), number("iou", &o.IoU),
		integer("max_det", 1, 1000, &o.MaxDet), integer("top_k", 1, 100, &o.TopK)} {
		if err != nil {
			return o, err
		}
	}
	return o, nil
}

// ReadImage returns the image bytes of a request body: the raw body for an image Content-Type, or the
// multipart field "image". The body must already be size-limited.
func ReadImage(contentType string, body io.Reader) ([]byte, *Error) {
	mediaType, params, err := mime.ParseMediaType(contentType)
	if contentType == "" || err != nil {
		return nil, &Error{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type",
			Message: fmt.Sprintf("Content-Type %q is not an image: send image/jpeg, image/png or image/webp, or a "+
				"multipart form with the field 'image'", contentType)}
	}
	mediaType = strings.ToLower(mediaType)
	switch {
	case isImageType(mediaType):
		data, err := readAll(body)
		if err != nil {
			return nil, readError(err)
		}
		if len(data) == 0 {
			return nil, &Error{Status: http.StatusBadRequest, Code: "bad_image", Message: "the body is empty: send the image bytes"}
		}
		return data, nil
	case mediaType == "multipart/form-data":
		return readMultipart(params["boundary"], body)
	default:
		return nil, &Error{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type",
			Message: fmt.Sprintf("Content-Type %q is not accepted: send image/jpeg, image/png or image/webp, or a "+
				"multipart form with the field 'image'", mediaType)}
	}
}

// readAll reads the body into one growing buffer (io.ReadAll's doubling copies a large image several times).
func readAll(body io.Reader) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(64 << 10)
	_, err := buf.ReadFrom(body)
	return buf.Bytes(), err
}

func isImageType(t string) bool {
	for _, s := range ImageTypes {
		if t == s {
			return true
		}
	}
	return false
}

func readMultipart(boundary string, body io.Reader) ([]byte, *Error) {
	noField := &Error{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type",
		Message: "the multipart form has no file field 'image' (curl -F image=@photo.jpg)"}
	if boundary == "" {
		return nil, noField
	}
	data, err := readAll(body)
	if err != nil {
		return nil, readError(err)
	}
	image, err := multipartField(data, boundary, "image")
	switch {
	case errors.Is(err, errNoField):
		return nil, noField
	case err != nil:
		return nil, &Error{Status: http.StatusBadRequest, Code: "bad_image",
			Message: fmt.Sprintf("the multipart form is malformed: %v", err)}
	case len(image) == 0:
		return nil, &Error{Status: http.StatusBadRequest, Code: "bad_image", Message: "the field 'image' is empty"}
	}
	return image, nil
}

var (
	errNoField      = errors.New("no such field")
	errNoDelimiter  = errors.New("no boundary delimiter in the body")
	errUnterminated = errors.New("a part is not closed by a boundary delimiter")
)

// multipartField returns the content of the form field `name` in a multipart/form-data body (RFC 7578).
// It is lenient where mime/multipart is strict: Go refuses a whole form when any part's header holds a control
// character, which RFC 5322's obs-qtext allows in a quoted field name; here such a part is only skipped unless
// it is the field asked for. Parts are split at the delimiters, the header block ends at the first empty line.
func multipartField(body []byte, boundary, name string) ([]byte, error) {
	delimiter := []byte("--" + boundary)
	i := bytes.Index(body, delimiter)
	if i < 0 {
		return nil, errNoDelimiter
	}
	next := append([]byte("\r\n"), delimiter...)
	rest := body[i+len(delimiter):]
	for {
		if bytes.HasPrefix(rest, []byte("--")) { // the close delimiter
			return nil, errNoField
		}
		lineEnd := bytes.Index(rest, []byte("\r\n")) // after transport padding
		if lineEnd < 0 {
			return nil, errUnterminated
		}
		rest = rest[lineEnd+2:]
		end := bytes.Index(rest, next)
		if end < 0 {
			return nil, errUnterminated
		}
		part := rest[:end]
		rest = rest[end+len(next):]
		var header, content []byte
		if bytes.HasPrefix(part, []byte("\r\n")) { // a part without header lines
			content = part[2:]
		} else if h, c, ok := bytes.Cut(part, []byte("\r\n\r\n")); ok {
			header, content = h, c
		} else {
			continue
		}
		if formName(header) == name {
			return content, nil
		}
	}
}

// formName is the name parameter of a part's Content-Disposition header, or "" when it has none that parses.
func formName(header []byte) string {
	for _, line := range bytes.Split(header, []byte("\r\n")) {
		key, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || !strings.EqualFold(strings.TrimSpace(string(key)), "Content-Disposition") {
			continue
		}
		disposition, params, err := mime.ParseMediaType(strings.TrimSpace(string(value)))
		if err != nil || disposition != "form-data" {
			return ""
		}
		return params["name"]
	}
	return ""
}

func readError(err error) *Error {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return &Error{Status: http.StatusRequestEntityTooLarge, Code: "too_large",
			Message: fmt.Sprintf("the body is over the %d-byte limit (limits.max_body_mb)", tooBig.Limit)}
	}
	return &Error{Status: http.StatusBadRequest, Code: "bad_image", Message: fmt.Sprintf("reading the body: %v", err)}
}
