// Chart colours come from the stylesheet (app.css owns the palette for both
// themes), read once per theme change, so cards and lines always agree.

let cached = null;

function hexToRgba(color, alpha) {
  const hex = color.trim().replace("#", "");
  if (!/^[0-9a-f]{6}$/i.test(hex)) return color;
  const [r, g, b] = [0, 2, 4].map((i) => parseInt(hex.slice(i, i + 2), 16));
  return `rgba(${r}, ${g}, ${b}, ${alpha})`;
}

/** The current theme's colours: text, muted, grid, series[0..7], band(color). */
export function theme() {
  if (cached) return cached;
  const style = getComputedStyle(document.documentElement);
  const read = (name) => style.getPropertyValue(name).trim();
  const series = [];
  for (let i = 0; i < 8; i += 1) series.push(read(`--series-${i}`) || "#888888");
  cached = {
    text: read("--text"),
    muted: read("--muted"),
    grid: read("--grid"),
    font: read("--font"),
    series,
    band: (color) => hexToRgba(color, 0.22),
  };
  return cached;
}

/** Call `onChange` whenever the system switches between light and dark. */
export function watchTheme(onChange) {
  const query = matchMedia("(prefers-color-scheme: dark)");
  query.addEventListener("change", () => {
    cached = null;
    onChange(theme());
  });
}
