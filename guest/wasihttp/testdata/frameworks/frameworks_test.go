// Package frameworks checks that chi, gin and echo answer exactly alike
// through wasihttp's fast path and through net/http's own server. It is a
// module of its own so that the frameworks stay out of wasiserve's
// go.mod; scripts/test.sh runs it.
package frameworks

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/go-chi/chi/v5"
	chimw "github.com/go-chi/chi/v5/middleware"
	"github.com/labstack/echo/v4"
	echomw "github.com/labstack/echo/v4/middleware"

	"github.com/wasiserve/wasiserve/guest/wasihttp/internal/difftest"
)

type user struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

func chiApp() http.Handler {
	r := chi.NewRouter()
	r.Use(chimw.Recoverer, chimw.StripSlashes)
	r.Get("/users/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":%q,"q":%q}`, chi.URLParam(r, "id"), r.URL.Query().Get("q"))
	})
	r.Post("/echo", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(w, r.Body)
	})
	r.Get("/panic", func(w http.ResponseWriter, r *http.Request) { panic("boom") })
	r.Get("/stream", func(w http.ResponseWriter, r *http.Request) {
		for i := range 3 {
			fmt.Fprintf(w, "line %d\n", i)
			w.(http.Flusher).Flush()
		}
	})
	return r
}

func ginApp() http.Handler {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(gin.Recovery())
	r.GET("/users/:id", func(c *gin.Context) {
		c.JSON(http.StatusOK, gin.H{"id": c.Param("id"), "q": c.Query("q")})
	})
	r.POST("/echo", func(c *gin.Context) {
		b, err := io.ReadAll(c.Request.Body)
		if err != nil {
			c.String(http.StatusBadRequest, "%v", err)
			return
		}
		c.Data(http.StatusOK, c.ContentType(), b)
	})
	r.POST("/bind", func(c *gin.Context) {
		var u user
		if err := c.ShouldBindJSON(&u); err != nil {
			c.JSON(http.StatusBadRequest, gin.H{"error": err.Error()})
			return
		}
		c.JSON(http.StatusCreated, u)
	})
	r.GET("/panic", func(c *gin.Context) { panic("boom") })
	r.GET("/stream", func(c *gin.Context) {
		for i := range 3 {
			c.Writer.WriteString(fmt.Sprintf("line %d\n", i))
			c.Writer.Flush()
		}
	})
	return r
}

func echoApp() http.Handler {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.Use(echomw.Recover())
	e.GET("/users/:id", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"id": c.Param("id"), "q": c.QueryParam("q")})
	})
	e.POST("/echo", func(c echo.Context) error {
		b, err := io.ReadAll(c.Request().Body)
		if err != nil {
			return err
		}
		return c.Blob(http.StatusOK, c.Request().Header.Get("Content-Type"), b)
	})
	e.POST("/bind", func(c echo.Context) error {
		var u user
		if err := c.Bind(&u); err != nil {
			return err
		}
		return c.JSON(http.StatusCreated, u)
	})
	e.GET("/panic", func(c echo.Context) error { panic("boom") })
	e.GET("/stream", func(c echo.Context) error {
		w := c.Response()
		for i := range 3 {
			fmt.Fprintf(w, "line %d\n", i)
			w.Flush()
		}
		return nil
	})
	return e
}

func req(method, path, extra, body string) string {
	return method + " " + path + " HTTP/1.1\r\nHost: app.test\r\n" + extra + "\r\n" + body
}

// requests are sent to every framework, each on a new connection closed
// for writing after it.
var requests = map[string]string{
	"get":             req("GET", "/users/42?q=a%20b", "Accept: application/json\r\n", ""),
	"get-slash":       req("GET", "/users/42/", "", ""),
	"head":            req("HEAD", "/users/7", "", ""),
	"not-found":       req("GET", "/nope", "", ""),
	"wrong-method":    req("DELETE", "/users/42", "", ""),
	"options":         req("OPTIONS", "/users/42", "", ""),
	"echo":            req("POST", "/echo", "Content-Type: text/plain\r\nContent-Length: 5\r\n", "hello"),
	"echo-chunked":    req("POST", "/echo", "Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n", "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"),
	"echo-big":        req("POST", "/echo", "Content-Type: application/octet-stream\r\nContent-Length: 5000\r\n", strings.Repeat("z", 5000)),
	"echo-expect":     req("POST", "/echo", "Content-Type: text/plain\r\nContent-Length: 4\r\nExpect: 100-continue\r\n", "body"),
	"bind":            req("POST", "/bind", "Content-Type: application/json\r\nContent-Length: 25\r\n", `{"id":"1","name":"Ada L"}`),
	"bind-bad":        req("POST", "/bind", "Content-Type: application/json\r\nContent-Length: 9\r\n", `{"id":1,}`),
	"panic":           req("GET", "/panic", "", ""),
	"stream":          req("GET", "/stream", "", ""),
	"pipelined":       req("GET", "/users/1", "", "") + req("POST", "/echo", "Content-Length: 2\r\n", "hi") + req("GET", "/users/3", "Connection: close\r\n", ""),
	"http10":          "GET /users/10 HTTP/1.0\r\n\r\n",
	"http10-keep":     "GET /users/10 HTTP/1.0\r\nHost: app.test\r\nConnection: keep-alive\r\n\r\n",
	"folded-fallback": req("GET", "/users/9", "X-F: a\r\n b\r\n", ""),
	"bad-request":     "GET /users/1 HTTP/1.1\r\nHost: a b\r\n\r\n",
	"dot-path":        req("GET", "/users/../users/5", "", ""),
}

// Each framework answers every request byte for byte (Date masked) the
// same through the fast path as through net/http's server.
func TestFrameworksMatchNetHTTP(t *testing.T) {
	for name, app := range map[string]func() http.Handler{"chi": chiApp, "gin": ginApp, "echo": echoApp} {
		t.Run(name, func(t *testing.T) {
			p := difftest.Start(t, func() *http.Server { return &http.Server{Handler: app()} })
			for rname, raw := range requests {
				t.Run(rname, func(t *testing.T) {
					got := difftest.RoundTrip(t, p.Fast, difftest.Exchange{HalfClose: true, Chunks: []string{raw}})
					if !strings.HasPrefix(got, "HTTP/1.") && !strings.Contains(rname, "http10") {
						t.Errorf("no answer: %q", got)
					}
					p.Same(t, difftest.Exchange{HalfClose: true, Chunks: []string{raw}})
				})
			}
		})
	}
}
