package api

import (
	"net/http"
	"net/http/httputil"
	"net/url"
)

// The stream routes (/v1/streams, /v1/streams/{name}) are the bundle's stream service's: it decodes, detects and
// tracks video. The server answers them on its own origin and behind its own keys by forwarding each request
// there; frames never pass through it (a stream names its source, and the service reads it).

// streamRoutes forwards to the stream service at target; a service that does not answer is a 503 in the API's
// error body, with Retry-After, as an overloaded server's is.
func (s *Server) streamRoutes(target *url.URL) handler {
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		s.deps.Log.Warn("stream service unreachable", "url", target.String(), "error", err)
		s.writeError(w, &Error{Status: http.StatusServiceUnavailable, Code: "streams_unavailable",
			RetryAfter: max(s.opts.RetryAfter, 1),
			Message:    "the stream service does not answer; it may still be starting (docker compose ps streams)"})
	}
	return func(w http.ResponseWriter, r *http.Request) *Error {
		proxy.ServeHTTP(w, r)
		return nil
	}
}
