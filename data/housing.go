package data

import (
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
)

// HousingRegions are the regions of SyntheticHousing, each with its own price level and
// mix of houses: split by region, the table is naturally non-IID.
var HousingRegions = []string{"north", "east", "south", "west"}

// HousingColumns is SyntheticHousing's header.
var HousingColumns = []string{"region", "rooms", "area_m2", "age_years", "distance_km", "garden", "energy", "price_k", "price_band"}

// housingRegion is a region's price level (k per 100 m²) and the means of its houses.
type housingRegion struct {
	base, area, age, distance, garden float64
}

var housingRegionParams = map[string]housingRegion{
	"north": {base: 170, area: 95, age: 45, distance: 14, garden: 0.6},
	"east":  {base: 210, area: 85, age: 35, distance: 9, garden: 0.45},
	"south": {base: 250, area: 110, age: 25, distance: 12, garden: 0.7},
	"west":  {base: 300, area: 75, age: 55, distance: 5, garden: 0.3},
}

// housingEnergy are the energy classes and their price factors.
var housingEnergy = []struct {
	class  string
	factor float64
}{{"A", 1.12}, {"B", 1.08}, {"C", 1.04}, {"D", 1.0}, {"E", 0.96}, {"F", 0.92}, {"G", 0.88}}

// SyntheticHousing writes a synthetic house-price table of rows rows from region (one of
// HousingRegions) to w as CSV with the header HousingColumns: a documented generator,
// so examples and tests have a public table with numeric and categorical columns, missing
// values, a real-valued target and a class label, and a column (region) to split it by.
//
// A house has an area (m², normal around the region's mean, sd 25, at least 25), rooms
// (area/25 plus noise, 1–9), an age (years, exponential around the region's mean, "NA"
// for 3% of houses), a distance to the centre (km, exponential), a garden (yes/no) and an
// energy class (A–G, "" for 2%). Its price (k) is
//
//	base·(area/100)^0.9·(1 + 0.04·(rooms − 4))·e^(−0.004·age)·e^(−0.015·distance)·garden·energy·e^ε
//
// with garden 1.08 (else 1), energy the class's factor (1.12 for A down to 0.88 for G),
// and ε ~ N(0, 0.12²); price_band is low (< 120), mid (< 200) or high. The same rng state
// gives the same table on every machine.
func SyntheticHousing(w io.Writer, region string, rows int, rng *rand.Rand) error {
	p, ok := housingRegionParams[region]
	if !ok {
		return fmt.Errorf("data: housing region %q unknown (use %q)", region, HousingRegions)
	}
	cw := csv.NewWriter(w)
	if err := cw.Write(HousingColumns); err != nil {
		return err
	}
	f := func(v float64, prec int) string { return strconv.FormatFloat(v, 'f', prec, 64) }
	for range rows {
		area := max(25, p.area+25*rng.NormFloat64())
		rooms := min(9, max(1, math.Round(area/25+0.8*rng.NormFloat64())))
		age := math.Round(p.age * rng.ExpFloat64())
		distance := p.distance * rng.ExpFloat64()
		garden := rng.Float64() < p.garden
		energy := housingEnergy[min(len(housingEnergy)-1, int(age/15+rng.Float64()*3))]
		price := p.base * math.Pow(area/100, 0.9) * (1 + 0.04*(rooms-4)) * math.Exp(-0.004*age) * math.Exp(-0.015*distance) * energy.factor
		if garden {
			price *= 1.08
		}
		price *= math.Exp(0.12 * rng.NormFloat64())
		band := "high"
		switch {
		case price < 120:
			band = "low"
		case price < 200:
			band = "mid"
		}
		ageCell, energyCell, gardenCell := f(age, 0), energy.class, "no"
		if rng.Float64() < 0.03 {
			ageCell = "NA"
		}
		if rng.Float64() < 0.02 {
			energyCell = ""
		}
		if garden {
			gardenCell = "yes"
		}
		rec := []string{region, f(rooms, 0), f(area, 1), ageCell, f(distance, 2), gardenCell, energyCell, f(price, 1), band}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
