// Package geo holds what the project knows about places: ISO 3166 country codes,
// their continents, and distances between coordinates.
package geo
