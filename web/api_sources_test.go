package web

import (
	"encoding/json"
	"strings"
	"testing"

	"lectern/auth"
	"lectern/sfu/rtsp"
)

// allowLoopbackSources lets the trainers of a test stack add sources on loopback.
func allowLoopbackSources(t *testing.T) func(*rtsp.SourcesConfig) {
	return func(c *rtsp.SourcesConfig) {
		allow, err := rtsp.ParseDestinations([]string{"127.0.0.0/8"})
		if err != nil {
			t.Fatal(err)
		}
		c.Allow, c.TrainersMayAdd = allow, true
	}
}

func TestSourcesAPI(t *testing.T) {
	s := newStack(t, stackOptions{sources: true, sourcesConfig: allowLoopbackSources(t)})
	id := s.createSession("Lecture")
	trainer := s.token(id, auth.RoleTrainer, "trainer")
	viewer := s.token(id, auth.RoleViewer, "v")
	path := "/api/sessions/" + id + "/sources"
	for _, tc := range []struct {
		name, token, body string
		want              int
	}{
		{"viewer may not add", viewer, `{"url":"rtsp://127.0.0.1:1/cam","name":"cam","as":"site"}`, 403},
		{"not rtsp", trainer, `{"url":"http://127.0.0.1/cam","name":"cam","as":"site"}`, 400},
		{"bad name", trainer, `{"url":"rtsp://127.0.0.1:1/cam","name":"Cam 1","as":"site"}`, 400},
		{"bad role", trainer, `{"url":"rtsp://127.0.0.1:1/cam","name":"cam","as":"boss"}`, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if resp, body := s.do("POST", path, tc.token, "application/json", tc.body); resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.want, body)
			}
		})
	}
	resp, body := s.do("POST", path, trainer, "application/json", `{"url":"rtsp://admin:s3cret@127.0.0.1:1/cam","name":"cam","as":"site"}`)
	if resp.StatusCode != 201 || strings.Contains(body, "s3cret") {
		t.Fatalf("add: %d %s", resp.StatusCode, body)
	}
	var info rtsp.SourceInfo
	_ = json.Unmarshal([]byte(body), &info)
	if resp, body := s.do("POST", path, trainer, "application/json", `{"url":"rtsp://127.0.0.1:1/cam","name":"cam","as":"site"}`); resp.StatusCode != 409 {
		t.Fatalf("duplicate name: %d %s", resp.StatusCode, body)
	}
	resp, body = s.do("GET", path, trainer, "", "")
	if resp.StatusCode != 200 || !strings.Contains(body, `"name":"cam"`) || strings.Contains(body, "s3cret") {
		t.Fatalf("list: %d %s", resp.StatusCode, body)
	}
	if resp, _ := s.do("DELETE", path+"/"+info.ID, trainer, "", ""); resp.StatusCode != 204 {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	if resp, _ := s.do("DELETE", path+"/"+info.ID, trainer, "", ""); resp.StatusCode != 404 {
		t.Fatalf("delete again: %d", resp.StatusCode)
	}
}

// TestSourcesAPIPolicy: with the default settings only the admin adds sources, and
// not to loopback or link-local addresses (the cloud metadata service); the
// refusals say why. A trainer may add sources only where the admin's allow-list
// says, once the admin lets trainers (issue 9, 10e).
func TestSourcesAPIPolicy(t *testing.T) {
	s := newStack(t, stackOptions{sources: true})
	id := s.createSession("Lecture")
	trainer := s.token(id, auth.RoleTrainer, "trainer")
	path := "/api/sessions/" + id + "/sources"
	for _, tc := range []struct {
		name, token, url string
		want             int
		reason           string
	}{
		{"trainer may not add by default", trainer, "rtsp://192.0.2.10/cam", 403, "only the admin"},
		{"loopback", testAdmin, "rtsp://127.0.0.1:8554/lecture", 403, "loopback"},
		{"ipv6 loopback", testAdmin, "rtsp://[::1]:8554/lecture", 403, "loopback"},
		{"metadata service", testAdmin, "rtsp://169.254.169.254/latest", 403, "link-local"},
		{"unspecified", testAdmin, "rtsp://0.0.0.0:8080/", 403, "loopback"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := `{"url":"` + tc.url + `","name":"cam","as":"site"}`
			resp, out := s.do("POST", path, tc.token, "application/json", body)
			if resp.StatusCode != tc.want || !strings.Contains(out, tc.reason) {
				t.Fatalf("status %d %s, want %d with %q", resp.StatusCode, out, tc.want, tc.reason)
			}
		})
	}
	// A camera on the LAN is the admin's to add.
	if resp, out := s.do("POST", path, testAdmin, "application/json", `{"url":"rtsp://192.0.2.10:1/cam","name":"cam","as":"site"}`); resp.StatusCode != 201 {
		t.Fatalf("admin adding a LAN camera: %d %s", resp.StatusCode, out)
	}

	// Trainers allowed, within the allow-list.
	s2 := newStack(t, stackOptions{sources: true, sourcesConfig: func(c *rtsp.SourcesConfig) {
		allow, err := rtsp.ParseDestinations([]string{"192.0.2.0/24"})
		if err != nil {
			t.Fatal(err)
		}
		c.Allow, c.TrainersMayAdd = allow, true
	}})
	id2 := s2.createSession("Lecture 2")
	trainer2 := s2.token(id2, auth.RoleTrainer, "trainer")
	path2 := "/api/sessions/" + id2 + "/sources"
	if resp, out := s2.do("POST", path2, trainer2, "application/json", `{"url":"rtsp://198.51.100.7/cam","name":"far","as":"site"}`); resp.StatusCode != 403 || !strings.Contains(out, "allow-list") {
		t.Fatalf("trainer outside the allow-list: %d %s", resp.StatusCode, out)
	}
	if resp, out := s2.do("POST", path2, trainer2, "application/json", `{"url":"rtsp://192.0.2.10:1/cam","name":"near","as":"site"}`); resp.StatusCode != 201 {
		t.Fatalf("trainer inside the allow-list: %d %s", resp.StatusCode, out)
	}
}
