// Editing a sensor's settings on the dashboard: a dialog that PUTs
// /api/sensors/<source>/<sensor>/settings. Offered only to whoever holds the
// full token (the page says so in data-can-edit); the server checks again.

const FIELDS = ["name", "order", "temperature_unit", "pressure_unit", "decimals"];

export class SettingsEditor {
  /**
   * @param {HTMLDialogElement} dialog  the form in index.html
   * @param {() => Promise<void>} onSaved  redraw the page with what was stored
   */
  constructor(dialog, onSaved) {
    this.dialog = dialog;
    this.form = dialog.querySelector("form");
    this.errorEl = dialog.querySelector(".settings-error");
    this.onSaved = onSaved;
    this.target = null;
    this.form.addEventListener("submit", (event) => this.submit(event));
  }

  /** Open the form filled with a sensor's current settings. */
  open(source, sensor, settings = {}) {
    this.target = { source, sensor };
    this.dialog.querySelector(".settings-key").textContent = `${source}/${sensor}`;
    for (const field of FIELDS) {
      const input = this.form.elements[field];
      const value = settings[field];
      if (input) input.value = value === null || value === undefined ? input.defaultValue : String(value);
    }
    this.form.elements.hidden.checked = Boolean(settings.hidden);
    this.errorEl.hidden = true;
    this.dialog.showModal();
  }

  body() {
    const read = (name) => this.form.elements[name].value;
    return {
      name: read("name").trim() || null,
      hidden: this.form.elements.hidden.checked,
      order: Number.parseInt(read("order") || "0", 10),
      temperature_unit: read("temperature_unit"),
      pressure_unit: read("pressure_unit"),
      decimals: read("decimals") === "" ? null : Number.parseInt(read("decimals"), 10),
    };
  }

  async submit(event) {
    if (event.submitter?.value !== "save") return; // Cancel closes the dialog
    event.preventDefault();
    const { source, sensor } = this.target;
    const url = `api/sensors/${encodeURIComponent(source)}/${encodeURIComponent(sensor)}/settings`;
    try {
      const response = await fetch(url, {
        method: "PUT",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(this.body()),
      });
      if (!response.ok) {
        const reason = await response.json().catch(() => ({}));
        throw new Error(reason.error || `HTTP ${response.status}`);
      }
      this.dialog.close();
      await this.onSaved();
    } catch (error) {
      this.errorEl.textContent = `Not saved: ${error.message}`;
      this.errorEl.hidden = false;
    }
  }
}
