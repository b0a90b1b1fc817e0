package web

import (
	"encoding/json"
	"strings"
	"testing"

	"lectern/auth"
	"lectern/sfu/rtsp"
)

func TestSourcesAPI(t *testing.T) {
	s := newStack(t, stackOptions{sources: true})
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
