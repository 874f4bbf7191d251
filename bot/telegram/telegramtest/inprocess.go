package telegramtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
)

// Transport returns an http.RoundTripper that hands every request straight
// to the fake's ServeHTTP in the caller's goroutine: no listener, no
// socket. Give it to a client (the adapter's Options.HTTPTransport) whose
// code runs inside a testing/synctest bubble, where a goroutine waiting on
// a real socket keeps the bubble's clock from ever moving. The request URL's
// scheme and host are ignored; any base URL will do. It works for a fake
// built by New or NewUnstarted.
//
// Cancelling a request's context releases a held getUpdates, as a client
// going away does. An answer dropped by FailAfter returns an error that
// wraps io.ErrUnexpectedEOF, as a connection closed mid-answer does.
func (s *Server) Transport() http.RoundTripper { return inProcess{s} }

type inProcess struct{ s *Server }

// errDropped is what a client sees when the fake drops the connection.
var errDropped = fmt.Errorf("telegramtest: connection closed before the answer: %w", io.ErrUnexpectedEOF)

func (t inProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	r := req.Clone(ctx)
	if r.Body == nil {
		r.Body = http.NoBody
	}
	r.RequestURI = req.URL.RequestURI()
	r.RemoteAddr = "192.0.2.1:1"
	if r.Host == "" {
		r.Host = req.URL.Host
	}
	rec := httptest.NewRecorder()
	aborted := serveAbortable(t.s, rec, r)
	_ = r.Body.Close()
	switch {
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case aborted:
		return nil, errDropped
	}
	resp := rec.Result()
	resp.Request = req
	return resp, nil
}

// serveAbortable runs h, reporting whether it aborted the answer with
// http.ErrAbortHandler, which net/http's server turns into a closed
// connection.
func serveAbortable(h http.Handler, w http.ResponseWriter, r *http.Request) (aborted bool) {
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				panic(p)
			}
			aborted = true
		}
	}()
	h.ServeHTTP(w, r)
	return false
}

// Listener is an in-memory net.Listener: every connection is one end of a
// net.Pipe whose other end a client got from DialContext. A server on it and its
// clients work inside a testing/synctest bubble, which real sockets do not.
// Serve the adapter's webhook on it (Options.WebhookListener) and give the
// fake Client() as Options.WebhookClient. Close closes the listener and
// every connection it made. A Listener is safe for concurrent use.
type Listener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once

	mu   sync.Mutex
	open []net.Conn
}

// ErrListenerClosed is returned by Accept and DialContext after Close.
var ErrListenerClosed = errors.New("telegramtest: listener closed")

// NewListener returns an open in-memory listener.
func NewListener() *Listener {
	return &Listener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

// Accept waits for the next DialContext.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, ErrListenerClosed
	}
}

// Close stops Accept and DialContext and closes every connection made.
func (l *Listener) Close() error {
	l.once.Do(func() {
		close(l.closed)
		l.mu.Lock()
		for _, c := range l.open {
			_ = c.Close()
		}
		l.open = nil
		l.mu.Unlock()
	})
	return nil
}

// Addr is a placeholder address.
func (l *Listener) Addr() net.Addr { return pipeAddr{} }

// DialContext connects to the listener, whatever network and address say,
// once a server accepts, or fails when ctx ends first.
func (l *Listener) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	server, client := net.Pipe()
	var err error
	l.mu.Lock()
	l.open = append(l.open, server, client)
	l.mu.Unlock()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.closed:
		err = ErrListenerClosed
	case <-ctx.Done():
		err = ctx.Err()
	}
	_ = server.Close()
	_ = client.Close()
	return nil, err
}

// Client is an HTTP client whose every connection is dialled to the
// listener: for Options.WebhookClient. Like the fake's own webhook client
// it does not follow redirects.
func (l *Listener) Client() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			DialContext: l.DialContext,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "telegramtest" }
