/// <reference types="vitest/config" />
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// The console backend (python -m tiers.console) serves dist/ and /api on port 8088; in `npm run dev`
// Vite proxies /api there so the page and the API share one origin as they do in production.
export default defineConfig({
  plugins: [react()],
  base: "./",
  build: {
    outDir: "dist",
    chunkSizeWarningLimit: 300,
  },
  server: {
    proxy: { "/api": { target: "http://127.0.0.1:8088", changeOrigin: false } },
  },
  test: {
    environment: "node", // component tests say `@vitest-environment jsdom`
    include: ["src/**/*.test.ts", "src/**/*.test.tsx"],
    restoreMocks: true,
  },
});
