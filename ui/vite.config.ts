import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// Built into the Python package, which the gateway serves at /ui.
export default defineConfig({
  base: "/ui/",
  plugins: [react()],
  build: { outDir: "../ledgerflow/api/ui", emptyOutDir: true, chunkSizeWarningLimit: 600 },
});
