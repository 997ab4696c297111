module tiers.dev/tools/gopher-lua

go 1.26.0

// gopher-lua, the Lua 5.1 interpreter Argo CD embeds to run health checks: the tests run the
// health checks in examples/argocd/ with its glua command.
tool github.com/yuin/gopher-lua/cmd/glua

require (
	github.com/chzyer/readline v0.0.0-20180603132655-2972be24d48e // indirect
	github.com/yuin/gopher-lua v1.1.1 // indirect
	golang.org/x/sys v0.0.0-20190204203706-41f3e6584952 // indirect
)
