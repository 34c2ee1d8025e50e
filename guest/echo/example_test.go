package echo_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/wasiserve/wasiserve/guest/echo"
	"github.com/wasiserve/wasiserve/guest/wasisock"
)

// The echo handler answers any method and path with the request's body.
func ExampleNewHandler() {
	srv := httptest.NewServer(echo.NewHandler(wasisock.Info{Source: wasisock.SourceAddress, FD: -1}, nil))
	defer srv.Close()
	resp, err := http.Post(srv.URL, "text/plain", strings.NewReader("echo"))
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.Status, string(body))
	// Output: 200 OK echo
}
