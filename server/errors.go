package server

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"
)

// Error is an answer other than the one asked for, as pkgsite's serrors.Error: a status,
// what the client is told, and the cause for the log. It is never a rendered body:
// handleError renders it in the format of the route that failed.
type Error struct {
	Status int
	// About names what was asked ("repo = demo arch = x86_64"), client text already made
	// safe; the text formats then start with "# <About> error: <Msg>" instead of
	// "# error: <Msg>".
	About string
	Msg   string
	// Details are further lines of the text formats (notes, what exists), without "# ".
	Details []string
	// Err is the cause, logged and never shown.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// lines are the comment lines of the metalink, mirrorlist and text formats.
func (e *Error) lines() []string {
	first := "# error: " + e.Msg
	if e.About != "" {
		first = "# " + e.About + " error: " + e.Msg
	}
	lines := make([]string, 0, 1+len(e.Details))
	lines = append(lines, first)
	for _, d := range e.Details {
		lines = append(lines, "# "+d)
	}
	return lines
}

var errNoSnapshot = &Error{Status: http.StatusServiceUnavailable, Msg: "starting up, no snapshot of the database yet"}

// publicError maps any error a handler returns to the Error the client gets.
func (s *Server) publicError(err error, c echo.Context) *Error {
	var (
		pe *Error
		br *BadRequestError
		he *echo.HTTPError
	)
	switch {
	case errors.As(err, &br):
		return &Error{Status: http.StatusBadRequest, Msg: safeText(br.Msg, 256)}
	case errors.As(err, &pe):
		return pe
	case errors.As(err, &he):
		msg := http.StatusText(he.Code)
		if m, ok := he.Message.(string); ok {
			msg = m
		}
		return &Error{Status: he.Code, Msg: msg}
	}
	s.log.Error("request failed", slog.String("uri", c.Request().RequestURI), slog.Any("err", err))
	return &Error{Status: http.StatusInternalServerError, Msg: "internal error"}
}

// handleError is the one place that turns errors into responses, in the format of the
// route (requests no route matched, 404 and 405, answer in the text format).
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	e := s.publicError(err, c)
	ri := info(c)
	ri.compress = false // a few bytes
	c.Response().Header().Set("Cache-Control", "no-store")
	var werr error
	switch ri.format {
	case formatJSON:
		werr = s.writeJSON(c, e.Status, map[string]string{"error": e.Msg})
	default:
		b := bufPool.Get().(*bytes.Buffer)
		b.Reset()
		defer bufPool.Put(b)
		ctype := ContentTypeMirrorlist
		if ri.format == formatMetalink {
			ctype = ContentTypeMetalink
			WriteMetalinkError(b, e.lines(), s.now())
		} else {
			WriteMirrorlistError(b, e.lines())
		}
		werr = blob(c, e.Status, ctype, b.Bytes())
	}
	if werr != nil {
		s.log.Debug("writing error response failed", slog.Any("err", werr))
	}
}
