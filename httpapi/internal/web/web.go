// Package web holds what httpapi and its compat profiles (httpapi/compat)
// both write and read: exact numbers and JSON answers (json.go), and query
// parameters (params.go). It knows no routes and no problems: httpapi maps
// errors to problems in one place (STYLE.md §7) and hands that to compat.
package web
