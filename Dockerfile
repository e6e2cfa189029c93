# One image for every Flotilla service: `flotilla serve <registry|crane|mirrors|redirector|content>`.
# syntax=docker/dockerfile:1
FROM node:20-slim AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json tsconfig.base.json ./
COPY packages ./packages
COPY services ./services
RUN npm ci --no-audit --no-fund && npm run build && npm prune --omit=dev

FROM node:20-slim
ENV NODE_ENV=production FLOTILLA_DATA_DIR=/var/lib/flotilla
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/packages ./packages
COPY --from=build /src/services ./services
# selection/: the snapshot mirrors writes and redirectors read (a volume shared by both).
RUN mkdir -p /var/lib/flotilla/selection && chown -R node:node /var/lib/flotilla
USER node
VOLUME ["/var/lib/flotilla"]
EXPOSE 5000 5001 5002 5003 5004 5005
ENTRYPOINT ["node", "/app/services/cli/dist/main.js"]
CMD ["start"]
