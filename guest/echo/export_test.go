package echo

import "net/http"

// MuxOf is the ServeMux behind a handler from NewHandler.
func MuxOf(h http.Handler) *http.ServeMux { return h.(router).mux }
