export { MongoSink, MongoSinkError, MONGO_DEFAULTS, type MongoSinkOptions, type MongoSinkStats, type InsertManyTarget } from './sink.js';
export { toDocument, type ReadingDocument } from './document.js';
