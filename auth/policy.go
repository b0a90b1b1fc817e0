package auth

// LiveWatchRoles returns the roles that may watch a session live, whatever the
// protocol (WHEP, RTSP DESCRIBE/SETUP/PLAY): the trainer, a classroom (site) and a
// viewer link. A learner watches the replays only, so a learner's personal token
// shared around cannot become a live stream. The admin token is accepted as well,
// by the callers.
func LiveWatchRoles() []Role { return []Role{RoleTrainer, RoleSite, RoleViewer} }
